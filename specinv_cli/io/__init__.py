"""Files in and out: reading arrays and spectrograms (:mod:`.read`) and what they hold
(:mod:`.spectrogram`), encoding audio (:mod:`.encode`), writing outputs safely (:mod:`.write`).

Knows nothing of STFTs or algorithms; imports only :mod:`specinv_cli.config`, the errors and
:mod:`specinv_cli.util`.
"""
from .encode import AUDIO_FORMATS, AudioFormat, EncodedAudio, encode_audio
from .read import SUFFIXES, example_path, load_array, load_spectrogram, peek_array
from .spectrogram import Target, interpret
from .write import atomic_output, audio_format, check_outputs, destination, save_audio, wav_bytes

__all__ = ["SUFFIXES", "load_array", "peek_array", "load_spectrogram", "example_path", "Target", "interpret",
           "AUDIO_FORMATS", "AudioFormat", "EncodedAudio", "encode_audio", "audio_format", "destination",
           "check_outputs", "atomic_output", "save_audio", "wav_bytes"]

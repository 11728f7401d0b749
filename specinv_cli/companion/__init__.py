"""The work behind the companion commands: comparisons and metrics of written audio
(:mod:`.analysis`), figures (:mod:`.plot`), listening pages (:mod:`.report`) and the speed
benchmark (:mod:`.bench`)."""

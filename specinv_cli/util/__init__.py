"""Layer 0, standard library only: memory limits (:mod:`.limits`), text for messages and JSON
(:mod:`.text`), standard output's state (:mod:`.stdio`), file sniffing (:mod:`.sniff`), a signal
that asked the run to end (:mod:`.interrupt`), thread pools (:mod:`.threads`), the C allocator
(:mod:`.allocator`)."""

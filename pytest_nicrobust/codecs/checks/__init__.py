"""What ``check-codec`` runs: the codec contract's properties (:mod:`.conformance`) and whether the
estimated rate tracks the real bitstream (:mod:`.rate_tracking`)."""

"""What users write, parsed and checked at collection (torch-free): suite files (:mod:`.suite`),
the tests they make (:mod:`.cases`), thresholds.toml (:mod:`.thresholds`, with its ``[regression]``
value type in :mod:`.regression`) and CI shards (:mod:`.shards`)."""

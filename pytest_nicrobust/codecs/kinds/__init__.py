"""Codec kinds: codecs with suite keys of their own, one folder each, listed in
:data:`pytest_nicrobust.codecs.registry.CODEC_KINDS`.

Every kind's folder holds the same two modules: ``table.py`` checks a suite's ``[[codecs]]`` table
at collection (torch-free: ``check_table(table, base_dir)``) and ``codec.py`` builds the codec on a
worker (``load(model, weights, quality, device, label, options)``). :mod:`.public_trees` holds what
the kinds that run an author's public source tree share.
"""

"""JPEG AI (ITU-T T.840.1 | ISO/IEC 6048-1) through the user's own reference-software tree: the codec kind ``jpegai``.

The plugin ships none of the reference software; a suite points at a tree (``root``) whose two
native extensions are built. ``table`` checks a suite's table and the tree without torch (at
collection); ``codec`` builds the codec on a worker (``engine`` drives the tree's encoder and
decoder, ``rate`` counts bits with its coder's tables, ``isolation`` keeps its modules and side
effects to itself). docs/jpegai.md says what a tree needs and what was verified.
"""

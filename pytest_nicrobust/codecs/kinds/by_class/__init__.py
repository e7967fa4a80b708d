"""The codec kind ``class``: any model with CompressAI's interface, named by ``class = "module:Class"``."""

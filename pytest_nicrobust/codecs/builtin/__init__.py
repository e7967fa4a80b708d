"""The codecs that come with the plugin: CompressAI's architectures (with the shipped checkpoints,
CompressAI's zoo or a file) and the classical codecs through Pillow (JPEG, WebP, JPEG 2000)."""

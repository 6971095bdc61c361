"""adacompress: learn, per image, the lowest compression that keeps a cloud vision API's answer."""

import gymnasium

__version__ = "0.1.0"
__all__ = ["__version__"]

gymnasium.register(
    id="adacompress/JpegQuality-v0",
    entry_point="adacompress.envs.jpeg_quality:JpegQualityEnv",
)

"""Gymnasium environments and drift scenarios."""

from adacompress.envs.jpeg_quality import JpegQualityEnv

__all__ = ["JpegQualityEnv"]

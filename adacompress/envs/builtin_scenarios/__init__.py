"""Built-in drift scenarios as package data (read through `adacompress.envs.scenarios`)."""

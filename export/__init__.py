"""Turn a finished run directory into the single `.onnx` file the agent deploys, and verify it.

`python -m export onnx --run RUN_DIR` (`export` alone is a shell builtin in bash and zsh).
See docs/ONNX_CONTRACT.md for what the file promises.
"""

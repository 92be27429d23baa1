"""`python -m export`: the form that works where `export` is a shell builtin (bash, zsh)."""
from export.cli import main

main()

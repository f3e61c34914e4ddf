"""What the peers run inside their own venvs (never imported by the bench's): scripts, handlers, runtimes."""

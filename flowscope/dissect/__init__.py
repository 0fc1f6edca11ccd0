"""Pure, stdlib-only dissectors over payload bytes: bounded work, never raise on hostile input."""

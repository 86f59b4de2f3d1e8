"""Implementation modules behind fastconv.functional and fastconv.grad (one per op family)."""

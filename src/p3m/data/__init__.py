"""Data: the P3M-10k layout, and a synthetic P3M-10k for tests and demos."""

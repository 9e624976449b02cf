"""hf_vidtok.models."""

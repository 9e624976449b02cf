"""hf_vidtok.evatok."""

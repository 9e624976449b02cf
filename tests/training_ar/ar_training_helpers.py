"""Constants shared by the AR training tests (imported through sys.path, set in conftest.py)."""

TINY_TOKENIZER = dict(
    frame_num=4, input_size=16, patch_size=8, temporal_patch_size=2, encoder_hidden_size=32, decoder_hidden_size=32,
    encoder_num_heads=2, decoder_num_heads=2, encoder_depth=1, decoder_depth=1, bottleneck_token_num=8,
    codebook_size=37, bottleneck_dim=8, prior_name=None,
)
NUM_COND_FRAMES = 2
CLIPS_PER_VIDEO = 4
TINY_GENERATOR = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2)

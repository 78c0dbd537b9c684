"""llama.cpp's names for its settings, shared by both llama engines (in-process and llama-bench)
and read by the controller's profile checks and result rows, so each name is defined once."""

# KV cache types a profile may name (in the order messages list them) -> llama.cpp's ggml_type
KV_CACHE_TYPES = {"f16": 1, "bf16": 30, "q8_0": 8, "q4_0": 2, "q4_1": 3, "iq4_nl": 20, "q5_0": 6, "q5_1": 7,
                  "f32": 0}
# flash attention as a profile says it -> llama_flash_attn_type, which is also what llama-bench's
# `-fa` takes and its `flash_attn` output field prints
FLASH_ATTN = {"auto": -1, "on": 1, "off": 0}

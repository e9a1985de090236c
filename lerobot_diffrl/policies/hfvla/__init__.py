"""The ``hfvla`` policy type: any Hugging Face vision-language model as an OpenVLA-style VLA (action tokens)."""

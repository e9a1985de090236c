"""Code shared by the ``diffrl`` and ``gaussrl`` policies (encoders, critic, RL interface, checkpoints, card).

Nothing heavy is imported here: submodules are imported where they are used.
"""

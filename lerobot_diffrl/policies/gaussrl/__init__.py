"""The ``gaussrl`` policy type: the Gaussian action-chunk baseline sharing ``diffrl``'s encoders."""

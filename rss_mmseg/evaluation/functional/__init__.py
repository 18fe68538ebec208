from .boundary import (boundary_band, boundary_fscore, boundary_mask,
                       boundary_match_counts, disc_offsets)

__all__ = [
    'boundary_fscore', 'boundary_mask', 'boundary_match_counts',
    'disc_offsets', 'boundary_band'
]

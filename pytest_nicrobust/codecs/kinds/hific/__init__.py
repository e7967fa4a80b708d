"""The codec kind ``hific``: HiFiC (Mentzer et al., NeurIPS 2020) from a public PyTorch port."""

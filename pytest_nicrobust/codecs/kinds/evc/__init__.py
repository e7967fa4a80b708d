"""The codec kind ``evc``: EVC (Wang et al., ICLR 2023) from microsoft/DCVC's public tree."""

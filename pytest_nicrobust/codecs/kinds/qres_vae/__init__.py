"""The codec kind ``qres-vae``: QRes-VAE (Duan et al., WACV 2023) from duanzhiihao/lossy-vae."""

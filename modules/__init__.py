"""Model building blocks with no training logic (PatchGAN discriminator, GAN losses). Imports libraries only."""

"""Dataset front-ends (SynthCaps, AudioCaps, own folder) and the shared preparation. Imports utils only."""

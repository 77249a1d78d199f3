"""AUDIT (Wang et al. 2023): an instruction-following audio editor trained on (input, instruction, output) triplets."""

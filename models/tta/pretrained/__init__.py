"""Published text-to-audio checkpoints (AudioLDM, Tango) converted into this toolkit's exports.

`convert.convert(kind, src, out, ...)` reads a published layout, checks it completely (every part present,
every weight accounted for, the audio contract ours), and only then writes a normal export that inference,
evaluation and training load like one of ours. May import `models.tta.*`, `models.vocoder`, `models.base`
and `utils`.
"""

# the sources and parts, here so that `bins/tta/convert.py --help` answers without importing the models
KINDS = ("audioldm", "audioldm-ckpt", "tango")
PARTS = ("all", "vae", "vocoder")

"""The prepared dataset's file names, written by preprocessors/ and read by models/ (neither imports the other)."""

SPLIT_FILES = {"train": "train.json", "valid": "valid.json", "test": "test.json"}
FINGERPRINT_FILE = "mel_config.json"  # in <Dataset>/mel/: the audio settings and preparation state

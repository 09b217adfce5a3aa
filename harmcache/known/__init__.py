"""Known-content matching: perceptual hashes of frames (`pdq`), compared with hash banks."""

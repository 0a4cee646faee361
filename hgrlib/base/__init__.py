"""The plumbing every layer uses: atomic files and sealed JSON (`io`), the project folder and git (`project`),
one-line progress (`progress`), code digests and machine identity (`provenance`)."""

"""Every byte on disk: the key-value engine, versioned state, blocks and results."""

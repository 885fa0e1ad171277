"""Private helpers shared by zerodrift's modules. Not a public API."""

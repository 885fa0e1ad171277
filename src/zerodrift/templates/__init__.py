"""Files that ``zerodrift init`` copies into a new project."""

"""Host sources for inventories: raw, file, glob, http."""

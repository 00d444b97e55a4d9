"""Monthly clippings: links an editor saves through the month, sorted and drafted into an issue."""

"""Commands that draw the paper's figures from this project's own code."""

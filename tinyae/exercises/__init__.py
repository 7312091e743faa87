"""Checkers for the exercises of the tutorial walkthrough (docs/tutorial/): call one with your answer."""

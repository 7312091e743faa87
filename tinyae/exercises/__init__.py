"""Checkers for the exercises at the end of each page of the tutorial walkthrough (docs/tutorial/).

One module per chapter: ``ramp`` (00, derivatives by hand and by the engine), ``chapter1`` (01, the
structure), ``chapter2`` (02, losses and regularization), ``chapter3`` (03, forward, backward and VAE
training) and ``chapter4`` (04, the mathematics and the worked example). A checker is a function you call
with your answer, e.g. ``from tinyae.exercises import ramp; ramp.check_numerical_derivative(my_derivative)``:
it prints a verdict and raises AssertionError with a hint when the answer is wrong.
"""

"""An audio-generation toolkit: DiffRhythm songs, F5-TTS speech, shared DiT/CFM components.

Importing the package is cheap: components and their heavy dependencies load when first used.
"""

__version__ = "0.1.0"

"""Engine services: what the API asks for and what the jobs carry out."""

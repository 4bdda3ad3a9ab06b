"""The BioThings web layer: config -> settings -> Tornado app -> query pipeline."""

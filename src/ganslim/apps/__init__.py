"""Applications over trained generators: :mod:`.translate` (image files through a generator) and :mod:`.demo`
(the built-in end-to-end job)."""

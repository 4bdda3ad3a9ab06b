"""A transform with a bug: ``q=loop forever`` never ends (what a shared container once did)."""

from biothings.web.pipeline import ESResultTransform


class LoopingTransform(ESResultTransform):
    def transform(self, response, options):
        while options.q == "loop forever":
            pass
        return super().transform(response, options)

"""t2i-lab: an experiment lab for text-to-image GANs (GAN-CLS / DCGAN on sentence embeddings).

Packages by reader, each importing only the layers below it (`pyproject.toml`'s import-linter
contracts, checked by the test suite; the picture is in docs/plugins.md):

    cli                      the `lab` command: parsers only
    experiments | course     sweeps and the compare page | grading and the quiz
    evaluation               FID, k-NN scores, alignment, the synthetic flowers' attribute reader
    train                    the trainer (writes sample grids through lab.sample)
    sample                   caption -> image (Pipeline), `lab generate`
    checkpoint               run directories: config, weights, checkpoint, metrics
    data                     captions, the dataset, synthetic sets, downloads, weights
    parts                    interfaces, the registries, building parts from a config
    config, device, files, pixels, plots, tblog, runlock    small shared helpers
    errors                   LabError

`lab.interfaces` and `lab.registry` are kept as the short names plugins and students import.
"""

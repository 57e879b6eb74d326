"""Configuration at the bottom of the house: the pipeline parameters (``params``, with the packaged
``params.yaml`` as the only defaults) and the service settings (``settings``, from the environment).
Imports nothing else of leadscore."""

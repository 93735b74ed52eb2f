"""The web app (`toolkit-app`): a serving layer beside toolkit.generation. Tabs come from the request options each
recipe declares; checking, running and writing outputs go through toolkit.generation. Gradio is imported only by
`ui` and `server` (the `app` extra)."""

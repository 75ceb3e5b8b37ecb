"""HTTP serving (``yolact serve``) and the browser viewer (``yolact view``): FastAPI on uvicorn, one inference
thread that batches concurrent requests. Needs the ``serve`` extra (``pip install 'yolact[serve]'``)."""

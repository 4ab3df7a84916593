-- Dataset: prepared is Healthy, preparing Progressing.
return by_ready()

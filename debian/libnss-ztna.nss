hosts before=resolve,dns ztna [!UNAVAIL=return]

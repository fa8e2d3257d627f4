from localdev.gateway.main import main

main()

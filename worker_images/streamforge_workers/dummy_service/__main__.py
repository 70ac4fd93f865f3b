from streamforge_workers.dummy_service.service import main

if __name__ == "__main__":
    main()

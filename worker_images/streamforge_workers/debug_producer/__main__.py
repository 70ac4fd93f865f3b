from streamforge_workers.debug_producer.cli import main

if __name__ == "__main__":
    main()
